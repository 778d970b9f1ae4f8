"""Tests of the robosync package."""
