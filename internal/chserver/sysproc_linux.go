//go:build linux

package chserver

import "syscall"

// sysProcAttr puts the server in its own process group and asks the kernel
// to send it SIGTERM when the thread that started it dies. Start runs the
// child from a goroutine locked to its OS thread for the child's whole
// life, so that thread ends only with the child or with this process.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
