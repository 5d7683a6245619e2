"""gridpilot.market"""
