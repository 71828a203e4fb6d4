package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a saga's steps as they complete.
type progress interface {
	step(name string, at time.Time)
	note(msg string, at time.Time)
	// end closes the display with the outcome line.
	end(msg string)
}

// newProgress is a live line on a terminal, plain lines otherwise (a log,
// a pipe, a CI job). With -o json it writes to stderr, keeping stdout for
// the JSON answer.
func (o *options) newProgress(title string) progress {
	w := o.io.out
	if o.wantJSON() {
		w = o.io.err
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return newLiveProgress(w, title)
	}
	return &plainProgress{w: w, title: title}
}

// plainProgress writes one timestamped line per step.
type plainProgress struct {
	w     io.Writer
	title string
}

func (p *plainProgress) step(name string, at time.Time) {
	fmt.Fprintf(p.w, "%s  %s: step %s done\n", at.Local().Format("15:04:05.000"), p.title, name)
}

func (p *plainProgress) note(msg string, at time.Time) {
	fmt.Fprintf(p.w, "%s  %s: %s\n", at.Local().Format("15:04:05.000"), p.title, msg)
}

func (p *plainProgress) end(msg string) { fmt.Fprintln(p.w, msg) }

// liveProgress redraws one line: a spinner, the steps done so far by
// name, the time elapsed.
type liveProgress struct {
	w     io.Writer
	title string
	steps []string
	bar   *progressbar.ProgressBar
}

func newLiveProgress(w io.Writer, title string) *liveProgress {
	p := &liveProgress{w: w, title: title}
	p.bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(p.describe()), progressbar.OptionSpinnerType(14),
		progressbar.OptionSetElapsedTime(true), progressbar.OptionSetSpinnerChangeInterval(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true))
	return p
}

func (p *liveProgress) describe() string {
	if len(p.steps) == 0 {
		return p.title + ": waiting for the first step"
	}
	return p.title + ": ✓ " + strings.Join(p.steps, " ✓ ")
}

func (p *liveProgress) step(name string, _ time.Time) {
	p.steps = append(p.steps, name)
	p.bar.Describe(p.describe())
	_ = p.bar.Add(1)
}

func (p *liveProgress) note(msg string, _ time.Time) {
	_ = p.bar.Clear()
	fmt.Fprintln(p.w, p.title+": "+msg)
	_ = p.bar.RenderBlank()
}

func (p *liveProgress) end(msg string) {
	_ = p.bar.Exit()
	fmt.Fprintln(p.w)
	fmt.Fprintln(p.w, msg)
}
