"""gridpilot.forecast"""
