"""gridpilot.model"""
