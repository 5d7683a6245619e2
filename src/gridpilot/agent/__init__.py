"""gridpilot.agent"""
