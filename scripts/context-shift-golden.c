// Golden data for the context shift, from llama.cpp itself (scripts/make-context-shift-golden.sh
// builds and runs this; only its JSON output is committed). For each model: evaluate a fixed
// token sequence, take the greedy next token, then shift the KV cache as llama.cpp's context
// shift does (llama_memory_seq_rm of keep..keep+discard, llama_memory_seq_add of -discard on the
// rest: the keys are re-rotated by RoPE), and record the logits of the next positions: the
// top-20 at the first one and a 24-token greedy continuation with its margins. The same steps
// without the shift are recorded too, so a test can tell the two apart.
//
// usage: context-shift-golden MODEL KEEP DISCARD TOKENS_FILE   (token ids, whitespace-separated)
// prints one JSON object. F32 KV cache, flash attention off, 1 thread, n_ctx 1024.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

#define STEPS 24

static int argmax(const float * l, int n, float * margin) {
    int best = 0;
    for (int i = 1; i < n; i++) if (l[i] > l[best]) best = i;
    float second = -INFINITY;
    for (int i = 0; i < n; i++) if (i != best && l[i] > second) second = l[i];
    if (margin) *margin = l[best] - second;
    return best;
}

static void top20(const float * l, int n) {
    int idx[20];
    int k = 0;
    for (int j = 0; j < 20; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int used = 0;
            for (int m = 0; m < k; m++) if (idx[m] == i) used = 1;
            if (!used && (best < 0 || l[i] > l[best])) best = i;
        }
        idx[k++] = best;
    }
    printf("[");
    for (int j = 0; j < 20; j++) printf("%s[%d, %.9g]", j ? ", " : "", idx[j], l[idx[j]]);
    printf("]");
}

// Decode one token at the next position; returns its logits.
static const float * step(struct llama_context * ctx, llama_token t) {
    struct llama_batch b = llama_batch_get_one(&t, 1);
    if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode failed\n"); exit(1); }
    return llama_get_logits_ith(ctx, -1);
}

// The first position after `first` (already chosen) and a greedy continuation.
static void run(struct llama_context * ctx, int n_vocab, llama_token first, const char * name) {
    printf("\"%s\": {\"first\": %d, ", name, first);
    const float * l = step(ctx, first);
    float m;
    int a = argmax(l, n_vocab, &m);
    printf("\"argmax\": %d, \"top20\": ", a);
    top20(l, n_vocab);
    int toks[STEPS];
    float margins[STEPS];
    for (int i = 0; i < STEPS; i++) {
        toks[i] = argmax(l, n_vocab, &margins[i]);
        if (i + 1 < STEPS) l = step(ctx, toks[i]);
    }
    printf(", \"greedy\": [");
    for (int i = 0; i < STEPS; i++) printf("%s%d", i ? ", " : "", toks[i]);
    printf("], \"margins\": [");
    for (int i = 0; i < STEPS; i++) printf("%s%.6g", i ? ", " : "", margins[i]);
    printf("]}");
}

int main(int argc, char ** argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s MODEL KEEP DISCARD TOKENS_FILE\n", argv[0]); return 1; }
    int keep = atoi(argv[2]), discard = atoi(argv[3]);
    FILE * f = fopen(argv[4], "r");
    if (!f) { perror(argv[4]); return 1; }
    llama_token toks[4096];
    int n = 0;
    while (n < 4096 && fscanf(f, "%d", &toks[n]) == 1) n++;
    fclose(f);

    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    printf("{\"keep\": %d, \"discard\": %d, \"tokens\": [", keep, discard);
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", toks[i]);
    printf("], ");
    for (int shifted = 1; shifted >= 0; shifted--) {
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = 1024;
        cp.n_batch = 1024;
        cp.n_ubatch = 1024;
        cp.n_threads = 1;
        cp.n_threads_batch = 1;
        cp.type_k = GGML_TYPE_F32;
        cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cp.swa_full = true;
        struct llama_context * ctx = llama_init_from_model(model, cp);
        if (!ctx) return 1;
        struct llama_batch b = llama_batch_get_one(toks, n);
        if (llama_decode(ctx, b) != 0) { fprintf(stderr, "prefill failed\n"); return 1; }
        float m;
        int first = argmax(llama_get_logits_ith(ctx, -1), n_vocab, &m);
        if (shifted) {
            llama_memory_t mem = llama_get_memory(ctx);
            if (!llama_memory_seq_rm(mem, 0, keep, keep + discard)) { fprintf(stderr, "seq_rm failed\n"); return 1; }
            llama_memory_seq_add(mem, 0, keep + discard, -1, -discard);
            printf("\"first_margin\": %.6g, ", m);
        }
        run(ctx, n_vocab, first, shifted ? "shifted" : "unshifted");
        printf(shifted ? ", " : "}\n");
        llama_free(ctx);
    }
    llama_model_free(model);
    return 0;
}
