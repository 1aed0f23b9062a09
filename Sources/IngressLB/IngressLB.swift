// IngressLB: VIP tables, conntrack and NAT used by the switch, backend selection, the ingress routing-mesh proxy.
//
// Empty on purpose: the foundation issue only fixes the module graph of ../shared/DESIGN.md §4
// so that later issues add code without reshaping the package.
