"""gridpilot.field"""
