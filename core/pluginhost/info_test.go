//go:build unix

package pluginhost

import (
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestInfoIsAskedOnceWhenThePluginStarts: GetInfo cannot change while a plugin process runs, so
// Info answers from what the plugin said at start. With the process stopped (SIGSTOP), no call
// could be answered; Info still is, for every caller, so it makes no round trip.
func TestInfoIsAskedOnceWhenThePluginStarts(t *testing.T) {
	f := newFixture(t)
	p, err := f.host.Plugin("pemdir")
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.Info(ctxTimeout(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	pid := p.client.ReattachConfig().Pid
	p.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := p.Info(ctxTimeout(t, 2*time.Second))
			if err == nil && info.Name != first.Name {
				t.Errorf("Info %+v, first %+v", info, first)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Info of a running plugin made a call: %v", err)
		}
	}
}
