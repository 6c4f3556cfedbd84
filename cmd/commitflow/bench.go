package main

import (
	"context"
	"errors"
	"io"
)

func cmdBench(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("bench: not implemented yet")
}
