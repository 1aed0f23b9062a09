// Gossip: SWIM/Lifeguard membership and network-scoped replicated tables on 7946 (issue 6).
//
// Empty on purpose: the foundation issue only fixes the module graph of ../shared/DESIGN.md §4
// so that later issues add code without reshaping the package.
