package gwtransport

import (
	"fmt"
	"time"
)

// Window is a daily time range during which a target is not used, as
// "HH:MM" strings in the gateway's time zone (see [WithTimeZone]; UTC by
// default). Start is included and End excluded; a window whose End is
// before its Start crosses midnight ("22:00"-"06:00").
type Window struct {
	Start string `json:"start"` // "HH:MM", included
	End   string `json:"end"`   // "HH:MM", excluded
}

// window is a parsed Window in minutes of the day.
type window struct{ start, end int }

func parseWindows(target string, ws []Window) ([]window, error) {
	out := make([]window, 0, len(ws))
	for i, w := range ws {
		s, err := parseHHMM(w.Start)
		if err != nil {
			return nil, fmt.Errorf("gwtransport: time window %d of %q: start: %w", i, target, err)
		}
		e, err := parseHHMM(w.End)
		if err != nil {
			return nil, fmt.Errorf("gwtransport: time window %d of %q: end: %w", i, target, err)
		}
		if s == e {
			return nil, fmt.Errorf("gwtransport: time window %d of %q: start and end are both %s; an empty or full-day window is ambiguous", i, target, w.Start)
		}
		out = append(out, window{s, e})
	}
	return out, nil
}

func parseHHMM(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 23 || m > 59 || h < 0 || m < 0 {
		return 0, fmt.Errorf("%q is not a time of day in HH:MM", s)
	}
	return h*60 + m, nil
}

// contains reports whether the minute of the day m falls in the window.
func (w window) contains(m int) bool {
	if w.start < w.end {
		return m >= w.start && m < w.end
	}
	return m >= w.start || m < w.end // crosses midnight
}

// inWindow returns the window the local time now falls in, if any.
func inWindow(ws []window, now time.Time, loc *time.Location) (window, bool) {
	if len(ws) == 0 {
		return window{}, false
	}
	t := now.In(loc)
	m := t.Hour()*60 + t.Minute()
	for _, w := range ws {
		if w.contains(m) {
			return w, true
		}
	}
	return window{}, false
}

// String renders the window as HH:MM-HH:MM.
func (w window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.start/60, w.start%60, w.end/60, w.end%60)
}
