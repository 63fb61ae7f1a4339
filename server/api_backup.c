/* Backup and restore through the API (docs/api.md): GET /api/backup answers the archive as a
 * download, POST /api/restore checks an uploaded archive exactly as `phasewise restore` does,
 * stages it as restore.pending and stops the appliance with exit status 75, so that the service
 * manager starts it again and the start applies it. Both run on a libuv worker, one at a time:
 * the archive holds the whole history. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_int.h"
#include "backup.h"
#include "pw_util.h"

typedef struct backup_job {
    uv_work_t req;
    pw_app *app;
    pw_web_pending *pending;
    pw_backup_paths paths;
    char site[PW_BAL_ID_LEN];
    char *upload; /* POST: the uploaded archive (web's file) */
    bool staged;  /* POST: checked and renamed to restore.pending */
    pw_backup_result res;
    pw_web_response resp;
} backup_job;

/* ---- GET /api/backup ---- */

static void backup_work(uv_work_t *req)
{
    pw_worker_yield_priority();
    backup_job *job = req->data;
    char path[1100], err[1400];
    /* An unlinked file in the data folder: the service may write nowhere else, and it is gone
     * with its descriptor whatever happens to the download. */
    snprintf(path, sizeof path, "%s/.backup-download-XXXXXX", job->paths.data_dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, sizeof err, "cannot make a temporary file in %s: %s", job->paths.data_dir,
                 strerror(errno));
        pw_api_set_error(&job->resp, 500, NULL, err);
        return;
    }
    unlink(path);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    uint64_t size = 0;
    int rc =
        pw_backup_write(&job->paths, fd, job->paths.data_dir, &job->res.m, &size, err, sizeof err);
    if (rc != 0) {
        close(fd);
        pw_api_set_error(&job->resp, rc == PW_BACKUP_E_IO ? 500 : 409, NULL, err);
        return;
    }
    job->resp.status = 200;
    job->resp.content_type = "application/x-tar";
    job->resp.body_is_file = true;
    job->resp.body_fd = fd;
    job->resp.body_len = (size_t)size;
    /* phasewise-<site>-<date>.tar; the site id is letters, digits and '-' already. */
    snprintf(job->resp.content_disposition, sizeof job->resp.content_disposition,
             "attachment; filename=\"phasewise-%s-%.10s.tar\"", job->site, job->res.m.created);
}

/* ---- POST /api/restore ---- */

static void restore_work(uv_work_t *req)
{
    pw_worker_yield_priority();
    backup_job *job = req->data;
    char err[1400], pending[1100];
    int rc = pw_backup_restore(&job->paths, job->upload, false, &job->res, err, sizeof err);
    if (rc != 0) {
        pw_api_set_error(&job->resp, rc == PW_BACKUP_E_IO ? 500 : 400, NULL, err);
        return;
    }
    snprintf(pending, sizeof pending, "%s/%s", job->paths.data_dir, PW_BACKUP_PENDING);
    int fd = open(job->upload, O_RDONLY | O_CLOEXEC);
    bool synced = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!synced || rename(job->upload, pending) != 0) {
        snprintf(err, sizeof err, "cannot stage the restore as %s: %s", pending, strerror(errno));
        pw_api_set_error(&job->resp, 500, NULL, err);
        return;
    }
    fd = open(job->paths.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    job->staged = true;
    const pw_backup_manifest *m = &job->res.m;
    json_t *files = json_array();
    for (size_t i = 0; i < m->n_files; i++)
        json_array_append_new(files, json_string(pw_backup_member(m->files[i].member)->name));
    char msg[256];
    snprintf(msg, sizeof msg,
             "The backup of \"%s\" made %s is checked; the appliance restarts now to restore it.",
             m->site, m->created);
    pw_api_set_json(&job->resp, 200,
                    json_pack("{s:b, s:b, s:s, s:s, s:s, s:s, s:i, s:o}", "ok", 1, "restarting", 1,
                              "message", msg, "site", m->site, "created", m->created, "phasewise",
                              m->phasewise, "schema", m->schema, "files", files));
}

/* ---- both ---- */

static void job_done(uv_work_t *req, int status)
{
    backup_job *job = req->data;
    pw_app *app = job->app;
    app->backup_busy = false;
    if (status != 0) {
        if (job->resp.body_is_file)
            close(job->resp.body_fd);
        free(job->resp.body);
        memset(&job->resp, 0, sizeof job->resp);
        pw_api_set_error(&job->resp, 503, NULL, "the backup was cancelled");
    }
    bool ok = job->resp.status == 200;
    if (job->upload && job->staged) {
        pw_app_event(app, "restore_staged", "", "backup of \"%s\" made %s staged; restarting",
                     job->res.m.site, job->res.m.created);
    } else if (job->upload) {
        pw_app_event(app, "restore_refused", "", "an uploaded backup was refused");
    } else if (ok) {
        pw_app_event(app, "backup", "", "backup downloaded (%zu bytes)", job->resp.body_len);
    }
    pw_web_complete(job->pending, &job->resp);
    if (job->staged)
        pw_app_restart(app, PW_BACKUP_EXIT_RESTART);
    free(job->upload);
    free(job);
}

static void submit(pw_app *app, const pw_web_request *req, pw_web_response *resp, uv_work_cb work,
                   const char *upload)
{
    if (app->backup_busy) {
        pw_api_set_error(resp, 503, NULL,
                         "a backup or restore is already in progress: try again in a moment");
        return;
    }
    backup_job *job = pw_xcalloc(1, sizeof *job);
    job->app = app;
    char err[256];
    if (pw_backup_paths_init(&job->paths, app->data_dir, app->config_path, app->db_path, err,
                             sizeof err) != 0) {
        pw_api_set_error(resp, 500, NULL, err);
        free(job);
        return;
    }
    pw_cfg_site_id(app->cfg, job->site, sizeof job->site);
    job->upload = upload ? pw_xstrdup(upload) : NULL;
    job->resp.status = 200;
    job->resp.content_type = "application/json";
    job->req.data = job;
    job->pending = pw_web_defer(req);
    int rc = uv_queue_work(&app->loop, &job->req, work, job_done);
    if (rc != 0) {
        pw_api_set_error(&job->resp, 500, NULL, uv_strerror(rc));
        pw_web_complete(job->pending, &job->resp);
        free(job->upload);
        free(job);
        return;
    }
    app->backup_busy = true;
}

bool pw_api_backup_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    if (strcmp(req->path, "/api/backup") == 0 && strcmp(req->method, "GET") == 0) {
        submit(app, req, resp, backup_work, NULL);
        return true;
    }
    if (strcmp(req->path, PW_API_RESTORE_PATH) == 0 && strcmp(req->method, "POST") == 0) {
        if (!req->body_file)
            pw_api_set_error(resp, 400, NULL,
                             "send the backup archive (a .tar from GET /api/backup or "
                             "phasewise backup) as the request body");
        else
            submit(app, req, resp, restore_work, req->body_file);
        return true;
    }
    return false;
}
