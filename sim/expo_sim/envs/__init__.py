"""Simulated tasks: robosuite environments, scripted experts, demonstrations, the robomimic writer."""
