package gwtransport

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// randomBody writes a random JSON object with the members the gateway
// edits ("model" and its case variants, duplicated or not; "messages" and
// "input" as arrays, empty or not, strings, or other values) among
// others, with random whitespace and escapes.
func randomBody(rng *rand.Rand) []byte {
	var b bytes.Buffer
	ws := func() {
		for i := rng.Intn(3); i > 0; i-- {
			b.WriteByte(" \t\r\n"[rng.Intn(4)])
		}
	}
	str := func() {
		b.WriteByte('"')
		for i := rng.Intn(40); i > 0; i-- {
			switch rng.Intn(10) {
			case 0:
				b.WriteString(`\"`)
			case 1:
				b.WriteString(`\u00e9`)
			case 2:
				b.WriteString(`\\`)
			case 3:
				b.WriteString("é")
			default:
				b.WriteByte("abc model:[]{},"[rng.Intn(15)])
			}
		}
		b.WriteByte('"')
	}
	var value func(depth int)
	value = func(depth int) {
		switch k := rng.Intn(7); {
		case k == 0 && depth < 3:
			b.WriteByte('[')
			for i, n := 0, rng.Intn(4); i < n; i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				ws()
				value(depth + 1)
				ws()
			}
			b.WriteByte(']')
		case k == 1 && depth < 3:
			b.WriteString(`{"role":"user","content":`)
			str()
			b.WriteByte('}')
		case k == 2:
			b.WriteString(strconv.Itoa(rng.Intn(1000)))
		case k == 3:
			b.WriteString([]string{"true", "false", "null"}[rng.Intn(3)])
		default:
			str()
		}
	}
	names := []string{`"model"`, `"Model"`, `"mod\u0065l"`, `"messages"`, `"input"`, `"stream"`, `"temperature"`, `"metadata"`, `"n"`, `"x\"y"`}
	b.WriteByte('{')
	ws()
	for i, n := 0, 1+rng.Intn(6); i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
			ws()
		}
		name := names[rng.Intn(len(names))]
		b.WriteString(name)
		ws()
		b.WriteByte(':')
		ws()
		switch name {
		case `"messages"`, `"input"`:
			if rng.Intn(4) == 0 {
				b.WriteString("[")
				ws()
				b.WriteString("]")
				break
			}
			value(0)
		case `"stream"`:
			b.WriteString("true")
		case `"n"`:
			b.WriteString("1")
		default:
			value(0)
		}
		ws()
	}
	b.WriteByte('}')
	return b.Bytes()
}

// corpusBodies returns the FuzzRewriteModel corpus's bodies.
func corpusBodies(t *testing.T) [][]byte {
	files, err := filepath.Glob("testdata/fuzz/FuzzRewriteModel/*")
	require.NoError(t, err)
	var out [][]byte
	for _, f := range files {
		p, err := os.ReadFile(f)
		require.NoError(t, err)
		lines := strings.Split(string(p), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[1], "[]byte(") {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		require.NoError(t, err)
		out = append(out, []byte(s))
	}
	return out
}

// pieceReader returns its bytes a random number at a time, and is no
// io.WriterTo: the path of a GetBody that is not in memory.
type pieceReader struct {
	p   []byte
	rng *rand.Rand
}

func (c *pieceReader) Read(p []byte) (int, error) {
	if len(c.p) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), 1+c.rng.Intn(7), len(c.p))
	copy(p, c.p[:n])
	c.p = c.p[n:]
	return n, nil
}

// readAll reads r in reads of random sizes (1 to 9 bytes).
func readAll(rng *rand.Rand, r io.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 9)
	for {
		n, err := r.Read(buf[:1+rng.Intn(len(buf))])
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestSpliceEqualsRewrite: for random bodies and the fuzz corpus, every
// way of reading an attempt's spliced body (Read in small pieces, WriteTo,
// over the caller's bytes in memory or over a reader that is not) yields
// exactly rewriteBody's bytes, with and without model messages, for chat
// and Responses (run.start clears the other list); the declared length is
// the bytes' length; GetBody replays identical bytes, again and again.
func TestSpliceEqualsRewrite(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	bodies := corpusBodies(t)
	for i := 0; i < 3000; i++ {
		bodies = append(bodies, randomBody(rng))
	}
	prepend, err := encodeMessages("p/m", []Message{{Role: "system", Content: "S \"q\" \u2603"}, {Role: "user", Content: "u"}})
	require.NoError(t, err)
	checked := 0
	for _, body := range bodies {
		var info bodyInfo
		if !looksLikeJSONObject(body) || scanBody(body, &info) != nil {
			continue
		}
		checked++
		base := scanned{info: info, size: int64(len(body)),
			msgSpot: prependSpot(body, info.messages, false), inSpot: prependSpot(body, info.input, true)}
		for _, op := range []string{"chat", "responses", "other"} {
			sc := base
			switch op {
			case "chat":
				sc.info.input = span{-1, -1}
			case "responses":
				sc.info.messages = span{-1, -1}
			default:
				sc.info.messages, sc.info.input = span{-1, -1}, span{-1, -1}
			}
			for _, pre := range [][]byte{nil, prepend} {
				info := sc.info
				want := rewriteBody(nil, body, &info, []byte(`"gpt-4o"`), pre)
				for _, inMem := range []bool{true, false} {
					s := sc
					open := func() (io.ReadCloser, error) {
						return io.NopCloser(&pieceReader{p: body, rng: rng}), nil
					}
					if inMem {
						s.body = body
					}
					sp := newSplice(&s, open, []byte(`"gpt-4o"`), pre)
					name := fmt.Sprintf("body %q op %s messages %t in memory %t", body, op, pre != nil, inMem)
					require.Equal(t, int64(len(want)), sp.n, name)
					req, err := http.NewRequest(http.MethodPost, "http://x/", nil)
					require.NoError(t, err)
					require.NoError(t, sp.attach(req))
					require.Equal(t, int64(len(want)), req.ContentLength, name)
					got, err := readAll(rng, req.Body)
					require.NoError(t, err, name)
					require.Equal(t, string(want), string(got), name)
					for replay := 0; replay < 2; replay++ {
						rc, err := req.GetBody()
						require.NoError(t, err)
						var w bytes.Buffer
						_, err = rc.(io.WriterTo).WriteTo(&w)
						require.NoError(t, err, name)
						require.Equal(t, string(want), w.String(), name+" (GetBody, WriteTo)")
						rc, err = req.GetBody()
						require.NoError(t, err)
						got, err := io.ReadAll(iotest.OneByteReader(rc))
						require.NoError(t, err)
						require.Equal(t, string(want), string(got), name+" (GetBody, Read)")
					}
				}
			}
		}
	}
	require.Greater(t, checked, 1000, "too few valid bodies generated")
}

// TestSpliceShortBody: a GetBody that replays fewer bytes than the scan
// saw fails the attempt's body with io.ErrUnexpectedEOF, never sends a
// body cut short in silence.
func TestSpliceShortBody(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":"hi"}],"model":"gateway"}`)
	var info bodyInfo
	require.NoError(t, scanBody(body, &info))
	sc := scanned{info: info, size: int64(len(body)), msgSpot: prependSpot(body, info.messages, false)}
	for cut := 0; cut < len(body); cut++ {
		short := body[:cut]
		sp := newSplice(&sc, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(short)), nil }, []byte(`"m"`), []byte(`{"role":"system","content":"s"}`))
		rc, err := sp.reader()
		require.NoError(t, err)
		_, err = io.ReadAll(rc)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut at %d (Read)", cut)
		rc, err = sp.reader()
		require.NoError(t, err)
		_, err = rc.(io.WriterTo).WriteTo(io.Discard)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut at %d (WriteTo)", cut)
	}
}

// TestScanReplayBodies: scanReplay sees exactly the caller's bytes for
// every GetBody net/http builds (bytes.Buffer, bytes.Reader: without a
// copy; strings.Reader: through a pooled buffer) and for a custom one, and
// refuses a GetBody that replays another length or fails, leaving Body
// unread for the plain path.
func TestScanReplayBodies(t *testing.T) {
	body := []byte(`{"model":"gateway","messages":[]}` + strings.Repeat(" ", int(replayMin)))
	cases := []struct {
		name string
		req  func() *http.Request
		own  bool // the caller's bytes, not a copy
		ok   bool
	}{
		{"bytes.Buffer", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", bytes.NewBuffer(body))
			return r
		}, true, true},
		{"bytes.Reader", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", bytes.NewReader(body))
			return r
		}, true, true},
		{"strings.Reader", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", strings.NewReader(string(body)))
			return r
		}, false, true},
		{"custom reader", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", strings.NewReader(string(body)))
			r.GetBody = func() (io.ReadCloser, error) {
				return io.NopCloser(&pieceReader{p: body, rng: rand.New(rand.NewSource(1))}), nil
			}
			return r
		}, false, true},
		{"longer replay", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(body) + " ")), nil }
			return r
		}, false, false},
		{"shorter replay, in memory", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body[1:])), nil }
			return r
		}, false, false},
		{"GetBody handing out Body itself (openai-go's *bytes.Reader body)", func() *http.Request {
			br := bytes.NewReader(body)
			r, _ := http.NewRequest(http.MethodPost, "http://x/", nil)
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) {
				_, err := br.Seek(0, 0)
				return io.NopCloser(br), err
			}
			r.Body, _ = r.GetBody()
			return r
		}, false, false},
		{"GetBody handing out Body itself, a ReadCloser of its own", func() *http.Request {
			rc := &closeTracker{Reader: strings.NewReader(string(body))}
			r, _ := http.NewRequest(http.MethodPost, "http://x/", rc)
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return rc, nil }
			return r
		}, false, false},
		{"failing GetBody", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return nil, io.ErrClosedPipe }
			return r
		}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			sc, ok := scanReplay(req, nil)
			require.Equal(t, tc.ok, ok)
			if !ok {
				if ct, ok := req.Body.(*closeTracker); ok {
					require.False(t, ct.closed, "Body must not be closed")
				}
				got, err := io.ReadAll(req.Body)
				require.NoError(t, err)
				require.Equal(t, string(body), string(got), "Body must be left unread")
				return
			}
			require.NoError(t, sc.scanErr)
			require.Equal(t, "gateway", string(sc.info.model))
			require.Equal(t, tc.own, sc.body != nil)
			if tc.own {
				require.Same(t, &body[0], &sc.body[0], "no copy of the caller's bytes")
			}
			sc.release()
		})
	}
}

// TestScanMemoOnlyForTheSameBytes: the scan an openai-go call made when it
// started is reused for the very same bytes only: never for a copy of
// them, another length, or other bytes a middleware put in their place.
func TestScanMemoOnlyForTheSameBytes(t *testing.T) {
	mine := []byte(`{"model":"gateway","messages":[]}`)
	var info bodyInfo
	require.NoError(t, scanBody(mine, &info))
	call := &sdkCall{memo: &scanMemo{p: &mine[0], n: len(mine), info: info}}
	other := []byte(`{"model":"other-x","messages":[]}`)
	cases := []struct {
		name string
		body []byte
		want string
	}{
		{"the same bytes", mine, "gateway"},
		{"a copy", append([]byte(nil), mine...), "gateway"}, // scanned again, same result
		{"other bytes of the same length", other, "other-x"},
		{"a prefix of the same array", mine[:len(mine)-1], ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, "http://x/", bytes.NewReader(tc.body))
			require.NoError(t, err)
			sc, ok := scanReplay(req, call)
			require.True(t, ok)
			if tc.want == "" {
				require.Error(t, sc.scanErr, "a cut body must be scanned, and fail")
				return
			}
			require.Equal(t, tc.want, string(sc.info.model))
			require.Equal(t, tc.name == "the same bytes", call.memoOf(sc.body) != nil)
		})
	}
}

// TestReadChunks: a body of unknown length is read whole and exactly,
// whatever the sizes its reader hands out, into one allocation of its own
// size (no doubling buffer kept), and a read error is returned.
func TestReadChunks(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, n := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 17, 1 << 20} {
		want := make([]byte, n)
		rng.Read(want)
		for _, wrap := range []func(io.Reader) io.Reader{
			func(r io.Reader) io.Reader { return r },
			iotest.HalfReader,
			iotest.DataErrReader,
			func(r io.Reader) io.Reader { return &pieceReader{p: want, rng: rng} },
		} {
			got, err := readChunks(wrap(bytes.NewReader(want)))
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Equal(t, len(got), cap(got), "held exactly at its size")
			body, rest, err := readBody(wrap(bytes.NewReader(want)), -1, int64(n))
			require.NoError(t, err)
			require.Nil(t, rest)
			require.Equal(t, want, body)
			require.Equal(t, len(body), cap(body))
		}
	}
	_, err := readChunks(iotest.TimeoutReader(bytes.NewReader(make([]byte, 10))))
	require.ErrorIs(t, err, iotest.ErrTimeout)
}

// closeTracker is a ReadCloser that records Close.
type closeTracker struct {
	*strings.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }
