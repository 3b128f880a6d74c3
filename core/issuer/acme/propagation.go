package acme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/miekg/dns"
)

// minPropagationPoll keeps a zero polling interval from spinning.
const minPropagationPoll = 50 * time.Millisecond

// waitPropagation waits until the DNS-01 record for domain is visible where the configured check
// looks (every authoritative server of the zone, or the resolvers), within the timeout.
func (s *dnsSolver) waitPropagation(ctx context.Context, domain, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	if err := sleepCtx(ctx, s.delay); err != nil {
		return err
	}
	if s.mode == PropagationNone {
		return nil
	}
	resolvers := s.resolvers
	if len(resolvers) == 0 {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return fmt.Errorf("no dns.resolvers configured and /etc/resolv.conf unreadable: %w", err)
		}
		for _, srv := range conf.Servers {
			resolvers = append(resolvers, net.JoinHostPort(srv, conf.Port))
		}
	}

	deadline := time.Now().Add(s.timeout)
	var servers []string // authoritative servers, found once
	for {
		var (
			ok  bool
			err error
		)
		if s.mode == PropagationResolvers {
			ok, err = allServe(ctx, resolvers, info.EffectiveFQDN, info.Value, true)
		} else {
			if servers == nil {
				servers, err = s.authoritativeServers(ctx, resolvers, info.EffectiveFQDN)
			}
			if err == nil {
				ok, err = allServe(ctx, servers, info.EffectiveFQDN, info.Value, false)
			}
		}
		if ok {
			return nil
		}
		wait := max(s.interval, minPropagationPoll)
		if time.Now().Add(wait).After(deadline) {
			msg := fmt.Sprintf("the TXT record %s is not visible (%s check) after %s (dns.propagation_timeout)", info.EffectiveFQDN, s.mode, s.timeout)
			if err != nil {
				msg += ": " + err.Error()
			}
			return errors.New(msg)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
	}
}

// allServe reports whether every server answers name's TXT query with value.
func allServe(ctx context.Context, servers []string, name, value string, recursive bool) (bool, error) {
	if len(servers) == 0 {
		return false, errors.New("no server to ask")
	}
	for _, srv := range servers {
		r, err := query(ctx, srv, name, dns.TypeTXT, recursive)
		if err != nil {
			return false, fmt.Errorf("%s: %w", srv, err)
		}
		found := false
		for _, rr := range r.Answer {
			if txt, ok := rr.(*dns.TXT); ok && strings.Join(txt.Txt, "") == value {
				found = true
			}
		}
		if !found {
			return false, fmt.Errorf("%s does not serve the record yet", srv)
		}
	}
	return true, nil
}

// authoritativeServers finds the zone of name and the addresses of its name servers.
func (s *dnsSolver) authoritativeServers(ctx context.Context, resolvers []string, name string) ([]string, error) {
	zone, err := dns01.DefaultClient().FindZoneByFqdnCustom(ctx, name, resolvers)
	if err != nil {
		return nil, fmt.Errorf("find the zone of %s: %w", name, err)
	}
	nsMsg, err := queryAny(ctx, resolvers, zone, dns.TypeNS)
	if err != nil {
		return nil, fmt.Errorf("name servers of %s: %w", zone, err)
	}
	var servers []string
	for _, rr := range nsMsg.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r, err := queryAny(ctx, resolvers, ns.Ns, qt)
			if err != nil {
				continue
			}
			for _, a := range r.Answer {
				switch v := a.(type) {
				case *dns.A:
					servers = append(servers, net.JoinHostPort(v.A.String(), s.authPort))
				case *dns.AAAA:
					servers = append(servers, net.JoinHostPort(v.AAAA.String(), s.authPort))
				}
			}
		}
	}
	slices.Sort(servers)
	servers = slices.Compact(servers)
	if len(servers) == 0 {
		return nil, fmt.Errorf("no address for the name servers of %s", zone)
	}
	return servers, nil
}

// queryAny asks the resolvers in turn until one answers.
func queryAny(ctx context.Context, resolvers []string, name string, qtype uint16) (*dns.Msg, error) {
	var errs []error
	for _, r := range resolvers {
		m, err := query(ctx, r, name, qtype, true)
		if err == nil && m.Rcode == dns.RcodeSuccess {
			return m, nil
		}
		if err == nil {
			err = fmt.Errorf("%s answered %s", r, dns.RcodeToString[m.Rcode])
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func query(ctx context.Context, server, name string, qtype uint16, recursive bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = recursive
	m.SetEdns0(4096, false)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server)
	}
	return r, err
}
