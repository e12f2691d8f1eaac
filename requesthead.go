package gwtransport

// RequestHead is what the gateway reads of a JSON request body to decide
// whether it routes the request, and how (see [ReadRequestHead]).
type RequestHead struct {
	// Model is the value of the last top-level member whose decoded name
	// is exactly "model", when that value is a JSON string
	// (ModelIsString); the gateway routes by it alone.
	Model string
	// ModelIsString reports whether that member exists and is a string.
	ModelIsString bool
	// Stream reports whether the request asks for a stream: a top-level
	// "stream" member, in any spelling a decoder reads, is true.
	Stream bool
	// ModelVariants counts the top-level members naming the model in
	// another case ("Model", "MODEL"): the gateway rewrites them with the
	// model, but decoders disagree on which one counts.
	ModelVariants int
}

// ReadRequestHead reads body as the gateway reads a request it may route,
// without copying it, so that a server in front of the gateway (such as
// gwproxy, deciding which route a key may use) decides on exactly what the
// gateway will. It fails when body is not one JSON object, or when a
// member the gateway reads is malformed.
func ReadRequestHead(body []byte) (RequestHead, error) {
	var info bodyInfo
	if err := scanBody(body, &info); err != nil {
		return RequestHead{}, err
	}
	return RequestHead{Model: string(info.model), ModelIsString: info.modelIsString, Stream: info.stream, ModelVariants: info.modelVariants}, nil
}
