package engine

import (
	"testing"

	"github.com/certfleet/certfleet/core/state/pgtest"
)

// TestMain stops the throwaway PostgreSQL server the PostgreSQL benchmarks and tests start.
func TestMain(m *testing.M) { pgtest.Main(m) }
