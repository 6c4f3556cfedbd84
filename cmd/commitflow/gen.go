package main

import (
	"context"
	"errors"
	"io"
)

func cmdGen(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("gen: not implemented yet")
}
