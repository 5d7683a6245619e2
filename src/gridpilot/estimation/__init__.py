"""gridpilot.estimation"""
