"""gridpilot.telemetry"""
