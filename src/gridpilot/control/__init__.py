"""gridpilot.control"""
