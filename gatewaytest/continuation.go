package gatewaytest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// WithReply sets the server's answer text. A streamed chat answer sends it
// in tokens split after each space (default: "Hello from <name>", streamed
// as "Hello from <name> tok2 tok3 ...", see WithStreamChunks).
func WithReply(text string) Option { return func(s *Server) { s.text = &text } }

// WithContinuation makes the server continue an assistant prefill, as a
// provider does in one of these modes (the gateway's Continuation values):
//
//   - "prefill": a chat request whose last message is an assistant message;
//   - "prefix": the same, with "prefix": true in that message (Mistral,
//     DeepSeek);
//   - "continue_final_message": the same, with "continue_final_message":
//     true and "add_generation_prompt": false in the body (vLLM, SGLang).
//
// It then answers (or streams) the rest of its reply after that message's
// content when the content is a prefix of its reply, else its whole reply.
// A request without the mode's flags gets its whole reply, as a fresh turn
// from a provider that does not continue. Without this option a trailing
// assistant message is ignored: the whole reply, as a plain OpenAI model
// answers.
func WithContinuation(mode string) Option { return func(s *Server) { s.cont = mode } }

// WithPrefillRejected makes the server refuse a chat request whose last
// message is an assistant message with a 400 invalid_request_error, as a
// provider that does not support prefill does.
func WithPrefillRejected() Option { return func(s *Server) { s.noPre = true } }

// prefillRequest is what the server reads of a chat body for a prefill.
type prefillRequest struct {
	Stream               bool              `json:"stream"`
	Messages             []json.RawMessage `json:"messages"`
	ContinueFinalMessage *bool             `json:"continue_final_message"`
	AddGenerationPrompt  *bool             `json:"add_generation_prompt"`
}

type prefillMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Prefix  bool   `json:"prefix"`
}

// continuation applies WithPrefillRejected and WithContinuation to one
// request. It reports false when it answered the request itself.
func (s *Server) continuation(w http.ResponseWriter, body []byte, f *Fault) bool {
	if !s.noPre && s.cont == "" {
		return true
	}
	var req prefillRequest
	if json.Unmarshal(body, &req) != nil || len(req.Messages) == 0 {
		return true
	}
	var last prefillMessage
	if json.Unmarshal(req.Messages[len(req.Messages)-1], &last) != nil || last.Role != "assistant" {
		return true
	}
	if s.noPre {
		writeError(w, http.StatusBadRequest, "", "invalid_request_error", "assistant prefill is not supported")
		return false
	}
	switch s.cont {
	case "prefill":
	case "prefix":
		if !last.Prefix {
			return true
		}
	case "continue_final_message":
		if req.ContinueFinalMessage == nil || !*req.ContinueFinalMessage || req.AddGenerationPrompt == nil || *req.AddGenerationPrompt {
			return true
		}
	default:
		return true
	}
	full := s.reply()
	if req.Stream {
		full = strings.Join(s.tokensFor(Fault{}), "")
	}
	rest := full
	if strings.HasPrefix(full, last.Content) {
		rest = full[len(last.Content):]
	}
	f.reply = &rest
	return true
}

// replyFor is a request's non-streamed answer text.
func (s *Server) replyFor(f Fault) string {
	if f.reply != nil {
		return *f.reply
	}
	return s.reply()
}

// tokensFor is a request's streamed answer, in tokens.
func (s *Server) tokensFor(f Fault) []string {
	switch {
	case f.reply != nil:
		return splitTokens(*f.reply)
	case s.text != nil:
		return splitTokens(*s.text)
	}
	return s.tokens()
}

// splitTokens splits text after each space; no token is empty (an empty
// text is no token).
func splitTokens(text string) []string {
	var out []string
	for _, t := range strings.SplitAfter(text, " ") {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}
