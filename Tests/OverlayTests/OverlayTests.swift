// Tests for Overlay arrive with its implementation.
