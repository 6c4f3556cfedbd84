package main

import (
	"context"
	"errors"
	"io"
)

func cmdRun(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("run: not implemented yet")
}
