// Golden logits of the tiny per-architecture models, from llama.cpp itself
// (scripts/make-arch-golden.sh builds and runs this; only its JSON output is committed). For each
// token sequence: a fresh context, the whole sequence in one batch with logits requested for every
// position, and every position's full-vocabulary logits printed (6 significant digits).
//
// usage: arch-golden MODEL SEQUENCES_FILE   (one sequence per line, token ids space-separated)
// prints one JSON object: {"n_vocab", "sequences": [{"tokens", "logits": [[n_vocab] per position]}]}.
// F32 KV cache, flash attention off, 1 thread, n_ctx 256 (phi3 chooses its RoPE factors from it).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

#define N_CTX 256
#define MAX_SEQ 16

static void quiet(enum ggml_log_level level, const char * text, void * user) {
    (void) user;
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s MODEL SEQUENCES_FILE\n", argv[0]); return 1; }
    FILE * f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 1; }
    static llama_token seqs[MAX_SEQ][N_CTX];
    int lens[MAX_SEQ];
    int n_seq = 0;
    char line[65536];
    while (n_seq < MAX_SEQ && fgets(line, sizeof line, f)) {
        int n = 0;
        for (char * t = strtok(line, " \t\r\n"); t && n < N_CTX; t = strtok(NULL, " \t\r\n")) seqs[n_seq][n++] = atoi(t);
        if (n > 0) lens[n_seq++] = n;
    }
    fclose(f);

    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "%s: llama.cpp refused the model\n", argv[1]); return 1; }
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    printf("{\"n_vocab\": %d, \"sequences\": [", n_vocab);
    for (int s = 0; s < n_seq; s++) {
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = N_CTX;
        cp.n_batch = N_CTX;
        cp.n_ubatch = N_CTX;
        cp.n_seq_max = 1;
        cp.n_threads = 1;
        cp.n_threads_batch = 1;
        cp.type_k = GGML_TYPE_F32;
        cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cp.swa_full = true;
        cp.no_perf = true;
        struct llama_context * ctx = llama_init_from_model(model, cp);
        if (!ctx) { fprintf(stderr, "context failed\n"); return 1; }
        int n = lens[s];
        struct llama_batch b = llama_batch_init(n, 0, 1);
        for (int i = 0; i < n; i++) {
            b.token[i] = seqs[s][i];
            b.pos[i] = i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = 1;
        }
        b.n_tokens = n;
        if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        printf("%s{\"tokens\": [", s ? ", " : "");
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", seqs[s][i]);
        printf("], \"logits\": [");
        for (int i = 0; i < n; i++) {
            const float * l = llama_get_logits_ith(ctx, i);
            if (!l) { fprintf(stderr, "no logits at %d\n", i); return 1; }
            printf("%s[", i ? ", " : "");
            for (int v = 0; v < n_vocab; v++) printf("%s%.6g", v ? "," : "", l[v]);
            printf("]");
        }
        printf("]}");
        llama_batch_free(b);
        llama_free(ctx);
    }
    printf("]}\n");
    llama_model_free(model);
    return 0;
}
