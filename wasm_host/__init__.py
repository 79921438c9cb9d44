"""Pure library that runs WebAssembly handlers with wasmtime in a sandbox (WAGI and reactor ABIs)."""
