package netem

import "fmt"

// Build creates the scenario's network: its hosts, in order, with their links set. The caller
// starts it (Network.Start), so it can open sockets first; schedules and outages count from
// Start. opts come after the scenario's seed, so WithSeed in opts overrides it.
func (s *Scenario) Build(opts ...Option) (*Network, error) {
	if s.Seed != 0 {
		opts = append([]Option{WithSeed(s.Seed)}, opts...)
	}
	n, err := New(s.CIDR, opts...)
	if err != nil {
		return nil, fmt.Errorf("netem: scenario %s: %w", s.Name, err)
	}
	for _, hs := range s.Hosts {
		h, err := n.AddHost(hs.Name, hs.IP)
		if err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("netem: scenario %s: %w", s.Name, err)
		}
		for _, d := range []struct {
			dir *Direction
			cfg LinkConfig
		}{{h.Up, hs.Up}, {h.Down, hs.Down}} {
			if err := d.dir.Set(d.cfg); err != nil {
				_ = n.Close()
				return nil, fmt.Errorf("netem: scenario %s: %w", s.Name, err)
			}
		}
	}
	return n, nil
}
