package main

import (
	"context"
	"errors"
	"io"
)

func cmdLadder(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("ladder: not implemented yet")
}
