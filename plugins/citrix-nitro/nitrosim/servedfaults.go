package nitrosim

// ServeLeafOnly makes every TLS listener send the leaf without its chain (a fault injection; see
// simtls.ServedFaults), or stops that.
func (s *Sim) ServeLeafOnly(on bool) { s.servedFaults.SetLeafOnly(on) }

// FreezeServed makes every TLS listener keep serving what it served at its last handshake, as a
// data plane that did not pick up a committed change (a fault injection; see
// simtls.ServedFaults), or stops that.
func (s *Sim) FreezeServed(on bool) { s.servedFaults.SetFrozen(on) }
