package gwtransport

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cancelRecorder is an attempt's cancel function that records when it
// was called.
type cancelRecorder struct {
	mu    sync.Mutex
	calls int
	at    time.Time
}

func (c *cancelRecorder) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls == 1 {
		c.at = time.Now()
	}
}

func (c *cancelRecorder) get() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.at
}

// TestWatchdogBounds attacks the one timer the attempts of a run share:
// each bound fires at its time and not before, for the attempt it was set
// for and no other, and nothing fires once lifted or released.
func TestWatchdogBounds(t *testing.T) {
	const ms = time.Millisecond
	type step struct {
		after  time.Duration // sleep before the step
		arm    bool
		limit  time.Duration
		idle   time.Duration // the attempt's idle limit (arm), a read's bound (read)
		read   bool          // readStart(idle)
		done   bool          // readDone
		disarm bool
		rel    bool
	}
	cases := []struct {
		name  string
		steps []step
		// per armed attempt: whether its cancel fires, and which bound
		fires   []bool
		limited []bool // timedOut for the last attempt
		idled   bool
		// the earliest a firing attempt may be cancelled, from its arm
		min []time.Duration
	}{
		{name: "limit fires", steps: []step{{arm: true, limit: 20 * ms}, {after: 60 * ms}},
			fires: []bool{true}, limited: []bool{true}, min: []time.Duration{20 * ms}},
		{name: "disarmed before its limit: never fires", steps: []step{{arm: true, limit: 200 * ms}, {after: 5 * ms, disarm: true}, {after: 250 * ms}},
			fires: []bool{false}, limited: []bool{false}},
		{name: "a later attempt is not ended by the earlier attempt's timer", steps: []step{
			{arm: true, limit: 20 * ms}, {after: 5 * ms, disarm: true},
			{after: 5 * ms, arm: true, limit: 300 * ms}, {after: 60 * ms}, // the first timer fired meanwhile
		}, fires: []bool{false, false}},
		{name: "the later attempt fires at its own limit", steps: []step{
			{arm: true, limit: 20 * ms}, {after: 5 * ms, disarm: true},
			{after: 5 * ms, arm: true, limit: 50 * ms}, {after: 90 * ms},
		}, fires: []bool{false, true}, limited: []bool{true}, min: []time.Duration{0, 50 * ms}},
		{name: "a shorter limit after a longer one", steps: []step{
			{arm: true, limit: 500 * ms}, {after: 2 * ms, disarm: true},
			{arm: true, limit: 20 * ms}, {after: 70 * ms},
		}, fires: []bool{false, true}, limited: []bool{true}, min: []time.Duration{0, 20 * ms}},
		{name: "idle read fires", steps: []step{
			{arm: true, limit: 500 * ms, idle: 20 * ms}, {read: true, idle: 20 * ms}, {after: 70 * ms},
		}, fires: []bool{true}, limited: []bool{false}, idled: true, min: []time.Duration{20 * ms}},
		{name: "idle bound only while reading", steps: []step{
			{arm: true, limit: 800 * ms, idle: 100 * ms}, {read: true, idle: 100 * ms}, {after: 5 * ms, done: true}, {after: 150 * ms},
		}, fires: []bool{false}, limited: []bool{false}},
		{name: "reads moved later keep the attempt alive", steps: []step{
			{arm: true, idle: 150 * ms}, {read: true, idle: 150 * ms}, {after: 80 * ms, done: true},
			{read: true, idle: 150 * ms}, {after: 80 * ms, done: true}, {read: true, idle: 150 * ms}, {after: 80 * ms, done: true}, {after: 20 * ms},
		}, fires: []bool{false}, limited: []bool{false}},
		{name: "released: nothing fires", steps: []step{{arm: true, limit: 20 * ms}, {disarm: true, rel: true}, {after: 40 * ms}},
			fires: []bool{false}, limited: []bool{false}},
		{name: "armed again after release", steps: []step{
			{arm: true, limit: 20 * ms}, {disarm: true, rel: true}, {arm: true, limit: 20 * ms}, {after: 60 * ms},
		}, fires: []bool{false, true}, limited: []bool{true}, min: []time.Duration{0, 20 * ms}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var w watchdog
			defer w.release()
			var recs []*cancelRecorder
			var armed []time.Time
			for _, s := range tc.steps {
				time.Sleep(s.after)
				switch {
				case s.arm:
					rec := &cancelRecorder{}
					recs = append(recs, rec)
					now := time.Now()
					armed = append(armed, now)
					w.arm(now, s.limit, s.idle, rec.cancel)
				case s.read:
					w.readStart(s.idle)
				case s.done:
					w.readDone()
				}
				if s.disarm {
					w.disarm()
				}
				if s.rel {
					w.release()
				}
			}
			require.Len(t, recs, len(tc.fires))
			for i, rec := range recs {
				n, at := rec.get()
				if !tc.fires[i] {
					assert.Zero(t, n, "attempt %d was ended", i)
					continue
				}
				require.Equal(t, 1, n, "attempt %d: cancel calls", i)
				assert.GreaterOrEqual(t, at.Sub(armed[i]), tc.min[i], "attempt %d ended early", i)
			}
			if len(tc.limited) > 0 {
				assert.Equal(t, tc.limited[len(tc.limited)-1], w.timedOut())
			}
			assert.Equal(t, tc.idled, w.idled())
		})
	}
}

// TestWatchdogRandom arms, lifts and re-arms attempts at random and checks
// every one: an attempt still armed past its limit was ended, after its
// limit; an attempt lifted before its limit never was.
func TestWatchdogRandom(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, seed))
			var w watchdog
			defer w.release()
			for i := 0; i < 12; i++ {
				limit := time.Duration(1+rng.IntN(15)) * time.Millisecond
				hold := time.Duration(rng.IntN(25)) * time.Millisecond
				var n atomic.Int32
				var at atomic.Int64
				start := time.Now()
				w.arm(start, limit, 0, func() {
					if n.Add(1) == 1 {
						at.Store(int64(time.Since(start)))
					}
				})
				time.Sleep(hold)
				notFired := w.disarm()
				elapsed := time.Since(start)
				if n.Load() > 0 {
					assert.False(t, notFired, "attempt %d: ended, but disarm says it was not", i)
					assert.GreaterOrEqual(t, time.Duration(at.Load()), limit, "attempt %d ended before its limit", i)
				} else {
					assert.True(t, notFired, "attempt %d", i)
					// A timer may be late on a loaded machine, never early:
					// only a hold well short of the limit proves anything.
					if elapsed >= limit+100*time.Millisecond {
						t.Errorf("attempt %d held %s past its limit %s and was never ended", i, elapsed, limit)
					}
				}
				if rng.IntN(4) == 0 {
					w.release()
				}
				was := n.Load()
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
				assert.Equal(t, was, n.Load(), "attempt %d ended after it was lifted", i)
				assert.LessOrEqual(t, n.Load(), int32(1), "attempt %d ended twice", i)
			}
		})
	}
}
