// Agent: the node agent: task sandboxes, executing assignments, programming Overlay, IngressLB and ServiceDNS.
//
// Empty on purpose: the foundation issue only fixes the module graph of ../shared/DESIGN.md §4
// so that later issues add code without reshaping the package.
