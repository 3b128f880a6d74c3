package paloaltopanos

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Commit commits the candidate configuration and waits for the job. By default the commit is
// partial: only the changes of the administrator that made ours (commit_admin, else the username
// of the credentials, else the admin the API key belongs to), so another administrator's
// unfinished work stays pending. commit_scope: full commits everything. A job that ends FAIL is
// an error carrying the job's messages; "no changes" is success.
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

// partialAdmin is the administrator a partial commit takes the changes of; "" for a full commit.
func (d *device) partialAdmin(ctx context.Context) (string, error) {
	switch {
	case d.fullCommit:
		return "", nil
	case d.commitAdmin != "":
		return d.commitAdmin, nil
	case d.target.Credentials.APIKey == "":
		// Our changes were made under the key keygen gave this user.
		return d.target.Credentials.Username, nil
	}
	return d.whoami(ctx)
}

// whoami asks the device which administrator the API key belongs to: "show admins" marks the
// caller's own session with <self/> (PAN-OS 10.0+; pan-os-python's Firewall.whoami reads it so).
func (d *device) whoami(ctx context.Context) (string, error) {
	fix := "set the device option commit_admin to the administrator the API key belongs to, or commit_scope: full to commit every administrator's pending changes"
	resp, err := d.client.Op(ctx, "<show><admins></admins></show>")
	if err != nil {
		var apiErr *panosclient.APIError
		if errors.As(err, &apiErr) && refusal(apiErr) {
			return "", sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "%s cannot say which administrator the API key belongs to (show admins refused); %s", d.address, fix).WithVendor(apiErr.VendorCode(), apiErr.Message())
		}
		return "", d.fail(ctx, err, "show admins")
	}
	for _, e := range resp.Result.Child("admins").All("entry") {
		if e.Child("self") != nil {
			if name := strings.TrimSpace(e.Value("admin")); name != "" {
				return name, nil
			}
		}
	}
	return "", sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "%s does not mark the API key's own session in show admins (PAN-OS before 10.0), so the administrator whose changes to commit is unknown; %s", d.address, fix)
}

func (d *device) commit(ctx context.Context, description string) (sdk.CommitResult, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.CommitResult{}, err
	}
	if d.commitDescription != "" {
		description = d.commitDescription
	}
	if description == "" {
		description = "certfleet"
	}
	admin, err := d.partialAdmin(ctx)
	if err != nil {
		return sdk.CommitResult{}, err
	}
	ans, err := d.client.Commit(ctx, commitCommand(description, admin), admin != "")
	if err != nil {
		return sdk.CommitResult{}, d.fail(ctx, err, "start a commit")
	}
	log := sdk.Logger(ctx)
	if ans.JobID == "" {
		log.Info("nothing to commit", "device", d.target.Name, "message", strings.Join(ans.Messages, " "))
		if err := d.checkPartialCommit(ctx, admin); err != nil {
			return sdk.CommitResult{}, err
		}
		return sdk.CommitResult{Changed: false, Message: strings.Join(ans.Messages, " ")}, nil
	}
	log.Info("commit job started", "device", d.target.Name, "job", ans.JobID, "partial_admin", admin)
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
	if err := d.checkPartialCommit(ctx, admin); err != nil {
		return sdk.CommitResult{JobID: ans.JobID, Message: details}, err
	}
	return sdk.CommitResult{Changed: true, JobID: ans.JobID, Message: details}, nil
}

// checkPartialCommit catches a partial commit that left our bindings behind: PAN-OS commits only
// that admin's changes, so if the changes were made under another admin (the credentials
// belong to someone else) they do not go live, and "no changes" would look like success. The
// sign is a profile that, in the candidate configuration, names a certificate the running
// configuration does not have at all: a certificate imported and bound but never committed.
func (d *device) checkPartialCommit(ctx context.Context, admin string) error {
	if admin == "" {
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
			"they were changed by another admin; set commit_admin to the admin the credentials belong to, or commit_scope: full",
		admin, strings.Join(stranded, ", "), d.address)
}
