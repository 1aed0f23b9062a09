// Tests for ControlPlane arrive with its implementation.
