// Tests for Agent arrive with its implementation.
