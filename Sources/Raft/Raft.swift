// Raft: the consensus core as a pure state machine, its write-ahead log and snapshots (issue 7).
//
// Empty on purpose: the foundation issue only fixes the module graph of ../shared/DESIGN.md §4
// so that later issues add code without reshaping the package.
