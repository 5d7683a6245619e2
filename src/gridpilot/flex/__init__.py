"""gridpilot.flex"""
