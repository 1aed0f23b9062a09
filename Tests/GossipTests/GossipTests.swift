// Tests for Gossip arrive with its implementation.
