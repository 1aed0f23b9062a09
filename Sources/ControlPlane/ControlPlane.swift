// ControlPlane: store over Raft, IPAM, scheduler, orchestrators, dispatcher, CA and the API.
//
// Empty on purpose: the foundation issue only fixes the module graph of ../shared/DESIGN.md §4
// so that later issues add code without reshaping the package.
