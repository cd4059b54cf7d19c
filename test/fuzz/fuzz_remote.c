/* fuzz_remote.c - libFuzzer harness over what a peer controls: the nng
 * message the transport receives (batch structure, the 96-byte envelope,
 * names, the local-only and epoch checks) and the msgpack bodies, which are
 * decoded by a receiving actor against their schema and rendered as JSON
 * the way mxctl's mailbox peek shows them.
 *
 * Input: the bytes of one nng message. The harness writes its node id into
 * each frame's to.node (the one field a fuzzer cannot guess) so frames get
 * past the receiver check; every other byte is the fuzzer's. The same bytes
 * are also decoded as the body of the message type named by their first
 * two bytes. Built and run by scripts/fuzz-remote; seeds in
 * test/fuzz/corpus-remote/ (well-formed frames and batches of several types).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_jsonw.h"
#include "mx_msg.h"
#include "mx_remote.h"

static mx_system_t *g_sys;
static mx_remote_t *g_rem;
static uint64_t g_node;

/* decodes whatever arrives and renders it as JSON */
static int sink_recv(mx_actor_t *self, void *state, struct mx_msg *m)
{
    const struct mx_msg_desc *d = mx_proto_desc(m->env.type);
    _Alignas(16) uint8_t out[2048];
    if (d && d->nfields && d->fields[d->nfields - 1].offset + 16u <= sizeof out)
        (void)mx_msg_decode(m, out);
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1u << 20);
    (void)mx_proto_to_json(m->env.type, m->body, m->body_len, &w);
    mx_jsonw_fini(&w);
    return 0;
}

static int sink_init(mx_actor_t *self, void *arg, void **state)
{
    *state = NULL;
    return 0;
}

static const struct mx_behaviour sink_beh = {"fuzz-sink", sink_init, sink_recv, NULL};

/* singleton id 77 up to seq 3 from node 0x42: the rest is unverified */
static bool epoch_check(void *ctx, uint64_t from, uint64_t epoch)
{
    return (epoch >> MX_EPOCH_SEQ_BITS) == 77 &&
           ((epoch & MX_EPOCH_SEQ_MASK) < 3 || ((epoch & MX_EPOCH_SEQ_MASK) == 3 && from == 0x42));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct mx_system_opts o = {.node_name = "fuzz", .schedulers = 1, .offload_threads = 1};
    if (mx_system_start(&o, &g_sys) != 0)
        abort();
    struct mx_remote_opts ro = {.listen_url = "inproc://mx-fuzz-remote"};
    if (mx_remote_start(g_sys, &ro, &g_rem) != 0)
        abort();
    mx_remote_set_epoch_check(g_rem, epoch_check, NULL);
    g_node = mx_system_node_id(g_sys);
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.name = "sink";
    so.cap_msgs = 4096; /* a bounded mailbox: the rest are dead letters */
    if (mx_spawn(g_sys, &sink_beh, NULL, &so, NULL) != 0)
        abort();
    return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *b = malloc(size ? size : 1);
    memcpy(b, data, size);
    if (size >= 8 && b[0] == 'M' && b[1] == 'B') {
        /* a batch: address each frame whose length prefix fits */
        size_t off = 8;
        for (uint32_t i = 0; i < 4096 && size - off >= 4; i++) {
            uint32_t fl = get32(b + off);
            off += 4;
            if (fl > size - off)
                break;
            if (fl >= 32)
                put64(b + off + 24, g_node);
            off += fl;
        }
    } else if (size >= 32) {
        put64(b + 24, g_node);
    }
    mx__remote_fuzz(g_rem, b, size);
    free(b);
    /* the bytes as a body of the type named by the first two */
    if (size >= 2) {
        const struct mx_msg_desc *d = mx_proto_desc((uint32_t)data[0] | (uint32_t)data[1] << 8);
        _Alignas(16) uint8_t out[2048];
        if (d && (!d->nfields || d->fields[d->nfields - 1].offset + 16u <= sizeof out))
            (void)mx_proto_decode(d, data + 2, size - 2, out);
        (void)mx_proto_validate(data + 2, size - 2);
    }
    return 0;
}
