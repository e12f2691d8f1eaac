package gwtransport

import (
	"sync/atomic"
	"time"
)

// targetStats are a target's live counters. Safe for concurrent use.
type targetStats struct {
	attempts, successes, failures atomic.Int64
	latencyNs                     atomic.Int64 // moving average of successful attempts

	// share is the Store's session (nil without one) and index the
	// target's in its Layout: latency samples are handed to it; the
	// counters stay per replica.
	share StoreSession
	index int
}

// shareSample hands a latency sample to the Store, if any.
func (s *targetStats) shareSample(d time.Duration) {
	if s.share != nil {
		s.share.Publish(Fact{Kind: FactLatency, Target: s.index, Latency: d})
	}
}

// latencyWeight is the weight of a new sample in the moving average.
const latencyWeight = 0.2

func (s *targetStats) record(success, failure bool, d time.Duration) {
	s.attempts.Add(1)
	switch {
	case success:
		s.successes.Add(1)
		s.sample(d)
		s.shareSample(d)
	case failure:
		s.failures.Add(1)
	}
}

// sample adds a successful attempt's latency to the moving average.
func (s *targetStats) sample(d time.Duration) {
	for {
		old := s.latencyNs.Load()
		next := int64(d)
		if old != 0 {
			next = int64(float64(old)*(1-latencyWeight) + float64(d)*latencyWeight)
		}
		if s.latencyNs.CompareAndSwap(old, next) {
			return
		}
	}
}

// started records a committed stream: an attempt, and its time to the
// commit as a latency sample; its success or failure is added when it ends.
func (s *targetStats) started(d time.Duration) {
	s.attempts.Add(1)
	s.sample(d)
	s.shareSample(d)
}

func (s *targetStats) latency() time.Duration { return time.Duration(s.latencyNs.Load()) }

func (s *targetStats) snapshot() (attempts, failures int64, latency time.Duration) {
	return s.attempts.Load(), s.failures.Load(), s.latency()
}
