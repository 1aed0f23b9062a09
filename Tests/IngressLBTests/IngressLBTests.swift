// Tests for IngressLB arrive with its implementation.
