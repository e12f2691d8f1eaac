package redisstore_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/redisstore"
)

// leaseModel is the in-memory answer of the atomic transitions: a probe
// lease per target (holder, until) and a counter per route.
type leaseModel struct {
	holder map[int]int
	until  map[int]time.Time
	rr     uint64
}

// Random sequences of the atomic transitions (probe acquire and release
// by three replicas, round-robin positions, the clock moving on) give the
// same answers from Redis as from the in-memory model, operation by
// operation: one probe holder at a time across replicas, a lapsed lease
// taken over, a release by a non-holder ignored, counters without gaps.
func TestModelAtomicTransitions(t *testing.T) {
	r := startRedis(t)
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newCluster(t, clusterOpts{replicas: 3, providers: 2, addr: r.Addr(),
				store: []redisstore.Option{generous, redisstore.WithPrefix(fmt.Sprint("model", seed))}})
			rnd := rand.New(rand.NewPCG(seed, seed*7919))
			m := leaseModel{holder: map[int]int{}, until: map[int]time.Time{}}
			var trace []string
			ids := map[[2]int]bool{} // the replicas' lease ids not yet released
			for op := 0; op < 300; op++ {
				rep := rnd.IntN(3)
				tg := rnd.IntN(2)
				st := c.replicas[rep].store
				now := c.clock.Now()
				switch k := rnd.IntN(10); {
				case k < 4: // acquire
					lease := time.Duration(1+rnd.IntN(20)) * time.Second
					until := now.Add(lease)
					granted, held := st.sess.AcquireProbe(tg, until)
					trace = append(trace, fmt.Sprintf("r%d acquire t%d for %s: %v", rep, tg, lease, granted))
					h, ok := m.holder[tg]
					if ok && h != rep && m.until[tg].After(now) {
						require.False(t, granted, "%v", trace)
						// another replica's lease, at most as long as the one asked for
						require.Equal(t, min(m.until[tg].UnixNano(), until.UnixNano()), held.UnixNano(), "%v", trace)
					} else {
						require.True(t, granted, "%v", trace)
						m.holder[tg], m.until[tg] = rep, until
						ids[[2]int{rep, tg}] = true
					}
				case k < 6: // release, and wait for it to be written
					before := st.Stats().Published
					st.sess.ReleaseProbe(tg)
					if ids[[2]int{rep, tg}] { // a release names this replica's latest lease: written
						require.Eventually(t, func() bool { return st.Stats().Published > before }, 5*time.Second, time.Millisecond)
					} // else: no lease to name, nothing written
					delete(ids, [2]int{rep, tg})
					trace = append(trace, fmt.Sprintf("r%d release t%d", rep, tg))
					if h, ok := m.holder[tg]; ok && h == rep {
						delete(m.holder, tg)
					}
				case k < 9: // round-robin
					n, ok := st.sess.NextRoundRobin(0)
					require.True(t, ok)
					require.Equal(t, m.rr, n, "%v", trace)
					m.rr++
				default:
					d := time.Duration(rnd.IntN(8)) * time.Second
					c.clock.Advance(d)
					trace = append(trace, fmt.Sprintf("advance %s", d))
				}
			}
		})
	}
}
