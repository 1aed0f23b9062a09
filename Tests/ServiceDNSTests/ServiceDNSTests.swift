// Tests for ServiceDNS arrive with its implementation.
