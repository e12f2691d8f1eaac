package redisstore_test

import (
	"fmt"
	"log/slog"
)

func newDebugLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func fmtAll(v any) string {
	return fmt.Sprintf("%v %+v %#v %s %q", v, v, v, v, v) + fmt.Sprint(slog.Any("store", v))
}
