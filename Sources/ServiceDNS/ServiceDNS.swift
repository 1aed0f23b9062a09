// ServiceDNS: the service-discovery DNS server: codec, record store, UDP/TCP responder, forwarder (issue 5).
//
// Empty on purpose: the foundation issue only fixes the module graph of ../shared/DESIGN.md §4
// so that later issues add code without reshaping the package.
