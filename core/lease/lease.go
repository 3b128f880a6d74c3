// Package lease divides a fleet between certfleet instances that share one PostgreSQL state: an
// instance claims a device before it inventories or changes it, keeps the claim alive while it
// works, and releases it when done. A claim expires when its holder stops renewing it (the
// instance died or lost the database), and another instance may then take it over.
//
// Every claim carries a fencing token, incremented by each takeover. The state store checks the
// token in the same transaction as each write of an operation (state.Fence), so an instance
// whose claim was taken over cannot record another step, and stops before touching the device
// again: two instances can never place two orders for one certificate.
//
// Expiry is judged by the database's clock only, so the hosts' clocks need not agree.
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// HeldError says who holds a claim that could not be taken.
type HeldError struct {
	Name      string
	Holder    string
	ExpiresAt time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is claimed by %s until %s", e.Name, e.Holder, e.ExpiresAt.UTC().Format(time.RFC3339))
}

// HeldUntil is when the claim expires unless its holder renews it.
func (e *HeldError) HeldUntil() time.Time { return e.ExpiresAt }

// Is makes errors.Is(err, state.ErrClaimedElsewhere) true.
func (e *HeldError) Is(target error) bool { return target == state.ErrClaimedElsewhere }

// Manager takes and keeps claims for one instance (holder).
type Manager struct {
	pool   *pgxpool.Pool
	holder string
	ttl    time.Duration
}

// New returns a Manager for holder (a name unique to this process, e.g. host/pid/random) whose
// claims expire ttl after their last renewal. The leases table is made by the state's migrations.
func New(pool *pgxpool.Pool, holder string, ttl time.Duration) *Manager {
	return &Manager{pool: pool, holder: holder, ttl: ttl}
}

// Holder is this instance's name in the leases table.
func (m *Manager) Holder() string { return m.holder }

// Claim is a held lease.
type Claim struct {
	m     *Manager
	Name  string
	Token int64

	stop     chan struct{}
	done     chan struct{}
	kept     bool
	stopOnce sync.Once
}

// Fence is what the store checks before each write made under the claim.
func (c *Claim) Fence() state.Fence { return state.Fence{Name: c.Name, Token: c.Token} }

// Claim takes name if nobody holds it or its claim expired; otherwise a *HeldError.
func (m *Manager) Claim(ctx context.Context, name string) (*Claim, error) {
	var token int64
	err := m.pool.QueryRow(ctx, `INSERT INTO leases(name, holder, token, expires_at)
		VALUES ($1, $2, 1, now() + make_interval(secs => $3))
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = leases.token + 1, expires_at = excluded.expires_at
		WHERE leases.expires_at <= now()
		RETURNING token`, name, m.holder, m.ttl.Seconds()).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		held := &HeldError{Name: name}
		if err := m.pool.QueryRow(ctx, `SELECT holder, expires_at FROM leases WHERE name = $1`, name).Scan(&held.Holder, &held.ExpiresAt); err != nil {
			return nil, fmt.Errorf("claim %s: %w", name, err)
		}
		return nil, held
	}
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", name, err)
	}
	return &Claim{m: m, Name: name, Token: token, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// errLost says a renewal found the claim taken over.
var errLost = errors.New("claim taken over")

// renew extends the claim if its token is still the current one.
func (c *Claim) renew(ctx context.Context) error {
	tag, err := c.m.pool.Exec(ctx, `UPDATE leases SET expires_at = now() + make_interval(secs => $3) WHERE name = $1 AND token = $2`,
		c.Name, c.Token, c.m.ttl.Seconds())
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return errLost
	}
	return nil
}

// Keep renews the claim every third of its lifetime until Release. It calls lost (once) when
// the claim was taken over, or when it could not be renewed for a whole lifetime (it may have
// expired and been taken): the holder must stop working on it.
func (c *Claim) Keep(lost func(error)) {
	c.kept = true
	go func() {
		defer close(c.done)
		tick := time.NewTicker(c.m.ttl / 3)
		defer tick.Stop()
		lastRenewed := time.Now()
		for {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.m.ttl/3)
			err := c.renew(ctx)
			cancel()
			switch {
			case err == nil:
				lastRenewed = time.Now()
			case errors.Is(err, errLost):
				lost(fmt.Errorf("claim on %s (token %d) was taken over by another instance", c.Name, c.Token))
				return
			case time.Since(lastRenewed) >= c.m.ttl:
				lost(fmt.Errorf("claim on %s could not be renewed for %s: %w", c.Name, c.m.ttl, err))
				return
			}
		}
	}()
}

// Release stops renewing and gives the claim up at once (if it is still ours), so another
// instance need not wait for it to expire.
func (c *Claim) Release(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stop) })
	if c.kept {
		<-c.done
	}
	if _, err := c.m.pool.Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = $1 AND token = $2`, c.Name, c.Token); err != nil {
		return fmt.Errorf("release claim on %s: %w", c.Name, err)
	}
	return nil
}

// ClaimDevice claims a device for the engine (core/engine Options.ClaimDevice): the returned
// context carries the claim's fence for the store and ends when the claim is lost; release gives
// the claim up. A device held by another live instance gives an error that is
// state.ErrClaimedElsewhere.
func (m *Manager) ClaimDevice(ctx context.Context, device string) (context.Context, func(), error) {
	c, err := m.Claim(ctx, "device/"+device)
	if err != nil {
		return nil, nil, err
	}
	claimed, cancel := context.WithCancelCause(state.WithFence(ctx, c.Fence()))
	c.Keep(cancel)
	release := func() {
		rctx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer done()
		_ = c.Release(rctx) // if this fails the claim simply expires
		cancel(nil)
	}
	return claimed, release, nil
}
