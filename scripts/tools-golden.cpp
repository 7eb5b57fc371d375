// Golden tool-calling prompts from llama.cpp (scripts/make-tools-golden.sh builds and runs this;
// only its output is committed): loads MODEL's vocabulary and chat template the way llama-server
// does (common_chat_templates_init), then renders every case of CASES.json (OpenAI messages) with
// the file's OpenAI tools through common_chat_templates_apply (use_jinja, parallel_tool_calls,
// add_generation_prompt) and prints {"cases": [{"name", "prompt"}]} as JSON on stdout.
// usage: tools-golden MODEL.gguf CASES.json
#include "chat.h"
#include "json.h"
#include "llama.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

int main(int argc, char ** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf CASES.json\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[2]);
    std::stringstream buf;
    buf << in.rdbuf();
    const common_json spec = common_json::parse(buf.str());

    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    common_chat_templates_ptr tmpls = common_chat_templates_init(model, "");
    const auto tools = common_chat_tools_parse_oaicompat(spec.at("tools"));

    common_json out = common_json::object();
    common_json cases = common_json::array();
    const common_json & list = spec.at("cases");
    for (size_t i = 0; i < list.size(); i++) {
        const common_json & c = list.at(i);
        common_chat_templates_inputs inputs;
        inputs.messages = common_chat_msgs_parse_oaicompat(c.at("messages"));
        inputs.tools = tools;
        inputs.use_jinja = true;
        inputs.parallel_tool_calls = true;
        inputs.add_generation_prompt = true;
        const common_chat_params params = common_chat_templates_apply(tmpls.get(), inputs);
        common_json r = common_json::object();
        r["name"] = c.at("name");
        r["prompt"] = params.prompt;
        cases.push_back(r);
    }
    out["cases"] = cases;
    printf("%s\n", out.dump(1).c_str());
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
