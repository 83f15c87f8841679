#include "proxy/cli.hpp"

#include <exception>
#include <iostream>

int main(int argc, char** argv)
{
    try {
        return egressd::proxy::run_cli(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
    } catch (const std::exception& e) {
        // Start-up errors surface here, once; the process never dies on an uncaught exception.
        std::cerr << "egressd: internal error: " << e.what() << '\n';
        return egressd::proxy::exit_invalid;
    }
}
