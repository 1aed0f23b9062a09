// Tests for Raft arrive with its implementation.
