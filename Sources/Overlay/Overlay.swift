// Overlay: the VTEP: ports, switch, endpoint and forwarding tables, ARP proxy, VXLAN encapsulation, batching, offloads, capture (issues 3 and 4).
//
// Empty on purpose: the foundation issue only fixes the module graph of ../shared/DESIGN.md §4
// so that later issues add code without reshaping the package.
