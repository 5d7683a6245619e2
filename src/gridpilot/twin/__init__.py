"""gridpilot.twin"""
