package paloaltopanos

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Commit commits the candidate configuration — only commit_admin's changes when that option is
// set (a partial commit, like the Sectigo agent's commit user) — and waits for the job. A job
// that ends FAIL is an error carrying the job's messages; "no changes" is success.
func (p *Plugin) Commit(ctx context.Context, t sdk.Target, req sdk.CommitRequest) (sdk.CommitResult, error) {
	var out sdk.CommitResult
	err := p.withDevice(ctx, t, func(d *device) error {
		var err error
		out, err = d.commit(ctx, req.Description)
		return err
	})
	return out, err
}

func commitCommand(description, admin string) string {
	var b strings.Builder
	b.WriteString("<commit>")
	if description != "" {
		b.WriteString("<description>" + panosclient.Escape(description) + "</description>")
	}
	if admin != "" {
		b.WriteString("<partial><admin><member>" + panosclient.Escape(admin) + "</member></admin></partial>")
	}
	b.WriteString("</commit>")
	return b.String()
}

func (d *device) commit(ctx context.Context, description string) (sdk.CommitResult, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.CommitResult{}, err
	}
	if description == "" {
		description = "certfleet"
	}
	ans, err := d.client.Commit(ctx, commitCommand(description, d.commitAdmin), d.commitAdmin != "")
	if err != nil {
		return sdk.CommitResult{}, d.fail(ctx, err, "start a commit")
	}
	log := sdk.Logger(ctx)
	if ans.JobID == "" {
		log.Info("nothing to commit", "device", d.target.Name, "message", strings.Join(ans.Messages, " "))
		if err := d.checkPartialCommit(ctx); err != nil {
			return sdk.CommitResult{}, err
		}
		return sdk.CommitResult{Changed: false, Message: strings.Join(ans.Messages, " ")}, nil
	}
	log.Info("commit job started", "device", d.target.Name, "job", ans.JobID, "partial_admin", d.commitAdmin)
	jctx, cancel := context.WithTimeout(ctx, d.commitTimeout)
	defer cancel()
	job, err := d.client.WaitForJob(jctx, ans.JobID, d.pollInterval)
	if err != nil {
		if ctx.Err() == nil && errors.Is(jctx.Err(), context.DeadlineExceeded) {
			return sdk.CommitResult{JobID: ans.JobID}, sdk.Unavailable("commit job %s on %s is still running after commit_timeout %s; it may still finish", ans.JobID, d.address, d.commitTimeout).WithCause(err)
		}
		return sdk.CommitResult{JobID: ans.JobID}, d.fail(ctx, err, "wait for commit job %s", ans.JobID)
	}
	details := strings.Join(job.Details, "; ")
	if len(job.Warnings) > 0 {
		log.Warn("commit job warnings", "device", d.target.Name, "job", job.ID, "warnings", strings.Join(job.Warnings, "; "))
	}
	if !job.OK() {
		return sdk.CommitResult{JobID: ans.JobID, Message: details}, sdk.FailedPrecondition(sdk.ReasonCommitFailed,
			"commit job %s on %s ended %s: %s", ans.JobID, d.address, job.Result, details).WithVendor(job.Result, details)
	}
	log.Info("commit job finished", "device", d.target.Name, "job", job.ID)
	if err := d.checkPartialCommit(ctx); err != nil {
		return sdk.CommitResult{JobID: ans.JobID, Message: details}, err
	}
	return sdk.CommitResult{Changed: true, JobID: ans.JobID, Message: details}, nil
}

// checkPartialCommit catches a partial commit that left our bindings behind: PAN-OS commits only
// commit_admin's changes, so if the changes were made under another admin (the credentials
// belong to someone else) they do not go live, and "no changes" would look like success. The
// sign is a profile that, in the candidate configuration, names a certificate the running
// configuration does not have at all: a certificate imported and bound but never committed.
func (d *device) checkPartialCommit(ctx context.Context) error {
	if d.commitAdmin == "" {
		return nil
	}
	live := map[string]bool{}
	for _, loc := range d.searchLocations() {
		certs, err := d.listCertsIn(ctx, loc, true)
		if err != nil {
			return err
		}
		for _, c := range certs {
			live[c.name] = true
		}
	}
	var stranded []string
	for _, loc := range d.searchLocations() {
		profiles, err := d.listProfiles(ctx, loc, false)
		if err != nil {
			return err
		}
		for _, p := range profiles {
			if p.certificate != "" && !live[p.certificate] {
				stranded = append(stranded, fmt.Sprintf("%s (%s) -> %s", p.name, loc, p.certificate))
			}
		}
	}
	if len(stranded) == 0 {
		return nil
	}
	return sdk.FailedPrecondition(sdk.ReasonCommitFailed,
		"after the partial commit by %q, SSL/TLS service profile(s) %s name certificates that are not in the running configuration of %s: "+
			"they were changed by another admin; set commit_admin to the admin the credentials belong to, or unset it for a full commit",
		d.commitAdmin, strings.Join(stranded, ", "), d.address)
}
