//go:build unix && !linux

package chserver

import "syscall"

// sysProcAttr puts the server in its own process group. Outside Linux there
// is no parent-death signal: a crashed parent leaves the server running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
