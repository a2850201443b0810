/*
 * tpm_device: a minimal N-API addon for TPM character devices (/dev/tpmrm0, /dev/tpm0).
 *
 * open(path) -> fd, transmit(fd, command, timeoutMs) -> Promise<Buffer>, close(fd).
 * transmit writes the whole command with one write(), waits for the response with poll()
 * (bounded by timeoutMs) and reads it with one read() of up to 4096 bytes, as the kernel TPM
 * driver and tpm2-tss's device TCTI expect. The I/O runs on the libuv thread pool so the event
 * loop stays free. Command and response bytes are never logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TPM_MAX_RESPONSE 4096
#define TPM_MAX_COMMAND 4096

#define CHECK(call)                                                                 \
  do {                                                                              \
    if ((call) != napi_ok) {                                                        \
      napi_throw_error(env, NULL, "tpm_device: N-API call failed: " #call);         \
      return NULL;                                                                  \
    }                                                                               \
  } while (0)

typedef struct {
  int fd;
  int timeout_ms;
  size_t cmd_len;
  unsigned char cmd[TPM_MAX_COMMAND];
  size_t rsp_len;
  unsigned char rsp[TPM_MAX_RESPONSE];
  int err;            /* errno of the failing call, 0 on success */
  const char *where;  /* which step failed */
  napi_async_work work;
  napi_deferred deferred;
} transmit_job;

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[256];
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(path): path must be a string");
    return NULL;
  }
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    char msg[320];
    snprintf(msg, sizeof msg, "open %s: %s", path, strerror(errno));
    napi_throw_error(env, errno == ENOENT ? "ENOENT" : (errno == EACCES ? "EACCES" : "EIO"), msg);
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "close(fd): fd must be a non-negative integer");
    return NULL;
  }
  close(fd);
  return NULL;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void transmit_execute(napi_env env, void *data) {
  (void)env;
  transmit_job *job = data;
  ssize_t n;
  do {
    n = write(job->fd, job->cmd, job->cmd_len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    job->err = errno;
    job->where = "write";
    return;
  }
  if ((size_t)n != job->cmd_len) {
    job->err = EIO;
    job->where = "short write";
    return;
  }
  long deadline = now_ms() + job->timeout_ms;
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) {
      job->err = ETIMEDOUT;
      job->where = "poll";
      return;
    }
    struct pollfd p = {.fd = job->fd, .events = POLLIN};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      job->err = errno;
      job->where = "poll";
      return;
    }
    if (r == 0) continue; /* re-check the deadline */
    if (p.revents & (POLLERR | POLLNVAL)) {
      job->err = EIO;
      job->where = "poll revents";
      return;
    }
    break;
  }
  do {
    n = read(job->fd, job->rsp, sizeof job->rsp);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    job->err = errno;
    job->where = "read";
    return;
  }
  job->rsp_len = (size_t)n;
}

static void transmit_complete(napi_env env, napi_status status, void *data) {
  transmit_job *job = data;
  napi_value result;
  if (status != napi_ok || job->err != 0) {
    char msg[160];
    napi_value code, text;
    const char *c = job->err == ETIMEDOUT ? "ETIMEDOUT" : "EIO";
    snprintf(msg, sizeof msg, "TPM device %s: %s", job->where ? job->where : "transmit",
             strerror(job->err != 0 ? job->err : EIO));
    napi_create_string_utf8(env, c, NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
    napi_create_error(env, code, text, &result);
    napi_reject_deferred(env, job->deferred, result);
  } else {
    void *buf = NULL;
    napi_create_buffer_copy(env, job->rsp_len, job->rsp, &buf, &result);
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_async_work(env, job->work);
  memset(job, 0, sizeof *job); /* no command or response bytes left in freed memory */
  free(job);
}

static napi_value js_transmit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1, timeout = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_value_int32(env, argv[2], &timeout) != napi_ok || timeout <= 0) {
    napi_throw_type_error(env, NULL, "transmit(fd, command, timeoutMs): bad arguments");
    return NULL;
  }
  bool is_typed = false;
  CHECK(napi_is_typedarray(env, argv[1], &is_typed));
  if (!is_typed) {
    napi_throw_type_error(env, NULL, "transmit: command must be a Uint8Array");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *bytes = NULL;
  napi_value ab;
  CHECK(napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, &ab, &offset));
  if (type != napi_uint8_array || length < 10 || length > TPM_MAX_COMMAND) {
    napi_throw_range_error(env, NULL, "transmit: command must be 10..4096 bytes");
    return NULL;
  }
  transmit_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, NULL, "transmit: out of memory");
    return NULL;
  }
  job->fd = fd;
  job->timeout_ms = timeout;
  job->cmd_len = length;
  memcpy(job->cmd, bytes, length);
  napi_value promise, name;
  CHECK(napi_create_promise(env, &job->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "tpm_transmit", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, transmit_execute, transmit_complete, job,
                               &job->work));
  CHECK(napi_queue_async_work(env, job->work));
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"transmit", NULL, js_transmit, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
