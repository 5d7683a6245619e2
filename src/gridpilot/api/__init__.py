"""gridpilot.api"""
